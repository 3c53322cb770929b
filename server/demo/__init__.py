"""The demo key's generated data, from the one traffic model the benchmarks share."""
