"""Alerts: rules and channels, their evaluation every minute, incidents and the
notifications they send (signed webhooks, Slack, email)."""
