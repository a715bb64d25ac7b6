"""What wraps the execution of an action: undo (snapshots), output sanitising, secret redaction."""
