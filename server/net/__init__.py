"""The network edge we call out through: the SSRF guard and guarded HTTP."""
