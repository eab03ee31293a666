"""crowdllm.report"""
