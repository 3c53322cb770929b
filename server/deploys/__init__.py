"""Deploys: a key's releases (version, time, description, hostname), markers on the
dashboard's time series, the before/after comparison of every endpoint around one, and
the alert on a release that made an endpoint worse beyond noise."""
