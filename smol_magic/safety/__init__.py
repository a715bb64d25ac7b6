"""What wraps execution: output sanitising (``sanitize``) and secret redaction (``redact``)."""
