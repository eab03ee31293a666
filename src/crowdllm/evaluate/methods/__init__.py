"""Method plugins for the experiment runner.

Every module in this package is imported the first time the runner looks a method up, so a module
here that calls :func:`crowdllm.evaluate.runner.register_method` at import time adds its methods to
``run_experiment`` and ``crowdllm evaluate --methods`` without editing the runner. Modules whose
name starts with ``_`` are not imported. Keep heavy imports (torch, llama_cpp) inside the factories.
"""
