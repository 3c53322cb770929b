"""Usage metering: a key's requests per month by consumer, route or status class, exact,
and final once the month closes (frozen when first asked; rows that arrive later for it
are counted apart, never added)."""
