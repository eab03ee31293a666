"""``crowdllm reference`` against a flaky server: a seeded mix of every fault the fake server can inject.

The run must complete; every fault is counted by kind in the run summary (stderr and ``<out>.usage.json``)
exactly as often as the server injected it; and no bad answer is silently replaced by a default: the
references that rest on unreadable answers say so (parse failures counted, NaN where nothing was readable).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hardening_helpers import run_cli, write_crowd_csv

from fakeserver import FakeOpenAIServer, FakeRequest, default_answer

K = 4  # fallback samples per task when a reply has no usable log-probs
UNREADABLE = "unreadable item"  # the fake model answers nonsense about this one text, always


class RecordingServer(FakeOpenAIServer):
    """Counts each injected fault by (fault, asked for log-probs, about the unreadable text), and the garbage
    replies to samples (no log-probs asked) by the text they were about (the last line of the prompt)."""

    def __init__(self, **kw) -> None:  # noqa: ANN003
        super().__init__(**kw)
        self.injected: Counter[tuple[str, bool, bool]] = Counter()
        self.garbage_samples: Counter[str] = Counter()
        self._local = threading.local()
        self._count_lock = threading.Lock()

    def _serve(self, handler, req: FakeRequest) -> None:  # noqa: ANN001
        self._local.what = (bool(req.body.get("logprobs")), UNREADABLE in req.last_user)
        self._local.text = req.last_user.rsplit("\n", 1)[-1]
        super()._serve(handler, req)

    def _draw_fault(self) -> str | None:
        fault = super()._draw_fault()
        if fault is not None:
            with self._count_lock:
                self.injected[(fault, *self._local.what)] += 1
                if fault == "garbage" and not self._local.what[0]:
                    self.garbage_samples[self._local.text] += 1
        return fault


def answer(req: FakeRequest) -> str:
    return "%%##@@ qwzx" if UNREADABLE in req.last_user else default_answer(req)


@pytest.mark.slow
def test_a_seeded_fault_mix_completes_and_every_fault_is_counted_by_kind(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], fast_backoff: None) -> None:
    n_tasks = 36
    texts = [f"comment number {t}" for t in range(n_tasks)]
    texts[5] = f"an {UNREADABLE}"
    data = write_crowd_csv(tmp_path / "crowd.csv", n_tasks=n_tasks, n_workers=2, texts=texts)
    out = tmp_path / "refs.csv"
    faults = {"500": 0.07, "429": 0.07, "timeout": 0.02, "drop": 0.06, "garbage": 0.1, "empty": 0.05,
              "no_logprobs": 0.08}
    plan = ["500", "429", "timeout", "drop", "garbage", "empty", "no_logprobs"]  # each kind at least once
    with RecordingServer(answer=answer, faults=faults, fault_plan=plan, seed=11, hold=4.0,
                         retry_after=0.05) as server:
        res = run_cli(capsys, "reference", "--dataset", str(data), "--out", str(out), "--base-url", server.url,
                      "--model", "fake-model", "--k", str(K), "--concurrency", "8", "--timeout", "1.5",
                      "--seed", "1", "--quiet")
    assert res.rc == 0, res.err
    assert "Traceback" not in res.text

    inj = server.injected
    total: Counter[str] = Counter()
    for (fault, _, _), n in inj.items():
        total[fault] += n
    # garbage on a log-prob reply: no choice among its log-probs ("off_format"), so it falls back to sampling;
    # on a sample it is a parse failure (unless the sample was about the unreadable text anyway)
    garbage_lp, garbage_sample = inj[("garbage", True, False)], inj[("garbage", False, False)]
    # a missing log-prob block only shows on a request that asked for one
    no_lp = inj[("no_logprobs", True, False)] + inj[("no_logprobs", True, True)]
    # the unreadable text's log-prob reply is off-format, unless the server dropped its log-probs first
    unreadable_off_format = 1 - inj[("no_logprobs", True, True)]
    assert garbage_sample > 0, "the seeded mix should also hit a fallback sample with garbage"

    usage = json.loads((tmp_path / "refs.csv.usage.json").read_text())
    expected_faults = {"server_error": total["500"], "rate_limit": total["429"], "timeout": total["timeout"],
                       "connection": total["drop"], "empty": total["empty"],
                       "off_format": garbage_lp + unreadable_off_format,
                       "no_logprobs": no_lp}
    assert usage["faults"] == {k: v for k, v in expected_faults.items() if v}
    assert usage["retries"] == total["500"] + total["429"] + total["timeout"] + total["drop"] + total["empty"]
    assert usage["fallbacks_to_sampling"] == garbage_lp + unreadable_off_format + no_lp
    assert usage["parse_failures"] == garbage_sample + K  # garbage samples + the unreadable task's K samples

    # the summary printed at the end says the same
    summary = res.err
    assert f"parse failures: {usage['parse_failures']}" in summary
    for kind, n in usage["faults"].items():
        assert f"{kind} {n}" in summary
    assert f"{usage['parse_failures']} unparseable answers" in res.out

    # nothing replaced by a default: the references show where they rest on fewer (or no) readable answers
    refs = pd.read_csv(out).set_index("task")
    assert len(refs) == n_tasks
    assert int((refs["method"] == "sampling").sum()) == usage["fallbacks_to_sampling"]
    assert int(refs["parse_failures"].sum()) == usage["parse_failures"]
    bad = refs.loc["t5"]
    assert bad["method"] == "sampling" and bad["parse_failures"] == K and pd.isna(bad["y_ref"])
    # each other task's parse failures are exactly the garbage samples the server sent about its text (none for
    # a log-prob reference); which task's fallback samples draw the garbage depends on timing (concurrency 8),
    # and now and then one gets garbage for all K samples: nothing readable, so NaN, never a default
    others = refs.drop(index="t5")
    garbage = pd.Series({f"t{t}": server.garbage_samples[texts[t]] for t in range(n_tasks) if t != 5})
    assert (others["parse_failures"] == garbage.reindex(others.index)).all()
    assert (others.loc[others["method"] == "logprobs", "parse_failures"] == 0).all()
    probs_cols = [f"p_{i}" for i in range(1, 6)]
    unread = others[others["parse_failures"] == K]
    assert (unread["method"] == "sampling").all() and unread["y_ref"].isna().all()
    assert unread[probs_cols].isna().all().all()
    readable = others[others["parse_failures"] < K]
    assert readable["y_ref"].between(1, 5).all()
    # every sampled reference counts only the samples that were read
    sampled = readable[readable["method"] == "sampling"]
    probs = sampled[probs_cols]
    assert ((probs * (K - sampled["parse_failures"]).to_numpy()[:, None]).round(9) % 1 == 0).all().all()
