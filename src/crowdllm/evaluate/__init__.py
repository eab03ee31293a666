"""crowdllm.evaluate"""
