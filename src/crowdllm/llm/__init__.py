"""crowdllm.llm"""
