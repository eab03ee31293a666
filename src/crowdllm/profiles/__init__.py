"""crowdllm.profiles"""
