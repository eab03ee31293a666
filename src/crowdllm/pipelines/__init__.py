"""crowdllm.pipelines"""
