"""Deploys: a key's releases (version, time, description, hostname), markers on the
dashboard's activity chart, and the before/after comparison of every endpoint around one."""
