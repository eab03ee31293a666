"""crowdllm.belief"""
