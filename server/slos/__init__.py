"""Service level objectives: a key's SLOs (availability or latency, a target over a rolling
window, a scope), their SLI, error budget and burn rates exact from the stored rows, and
the burn-rate alerts (the multi-window, multi-burn-rate method of Google's SRE workbook)."""
