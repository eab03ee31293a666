"""The swap test (issue #13): do comparison votes read the texts, or follow the position they are shown in?

    python benchmarks/swap_test.py                       # fake crowds through the fake server (seconds)
    python benchmarks/swap_test.py --embedded --n 20     # the embedded model (minutes on 2 CPU cores)
    crowdllm pipeline bias --n 20                        # the same on any backend (the CLI)

Three fake crowds answer through the fake OpenAI-compatible server on 127.0.0.1: one that always says
"A" (follows position), one that reads the texts (picks the undamaged one), and one that reads them
only 60 % of the time and otherwise says "A". For each the table prints, per order, the share of
single votes that pick the better text, the share of voters following position, and how often the
better text wins the counterbalanced comparison step (see crowdllm.pipelines.bias).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _fake_crowds():
    from crowdllm.pipelines.bias import base_texts

    good = {t["text"] for t in base_texts()}

    def read(req) -> str:
        user = req.messages[-1]["content"] if req.messages else req.prompt
        opts = dict(re.findall(r"^([AB])\) (.*)$", user, re.M))
        return next((k for k, v in opts.items() if v in good), "A")

    def sometimes(req) -> str:
        key = f"{req.messages}{req.seed}".encode()
        return read(req) if hashlib.sha256(key).digest()[0] < 0.6 * 256 else "A"

    return {"follows position (always A)": lambda req: "A", "reads the texts": read,
            "reads 60 %, else A": sometimes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--voters", type=int, default=3)
    ap.add_argument("--embedded", action="store_true", help="also run the embedded model (slow)")
    ap.add_argument("--model-path", default=None, help="embedded model file ('test': SmolLM2-135M)")
    args = ap.parse_args()

    from rich.console import Console

    from crowdllm.cli.pipeline import print_swap
    from crowdllm.llm import open_backend
    from crowdllm.pipelines.bias import swap_pairs, swap_test

    console = Console()
    pairs = swap_pairs(args.n)
    from fakeserver import FakeOpenAIServer

    for name, answer in _fake_crowds().items():
        with FakeOpenAIServer(answer=answer) as server:
            llm = open_backend(base_url=server.url, model="fake-model", cache=False)
            try:
                result = swap_test(llm, pairs, voters=args.voters)
            finally:
                llm.close()
        console.print(f"[bold]fake server: {name}[/bold]")
        print_swap(console, result)
    if args.embedded:
        llm = open_backend(model_path=args.model_path)
        try:
            result = swap_test(llm, pairs, voters=args.voters, by=["answers", "logprobs", "checklist"])
        finally:
            llm.close()
        print_swap(console, result, backend=llm.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
