from crowdllm.cli import run

run()
