"""crowdllm.aggregate"""
