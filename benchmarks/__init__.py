"""Speed and memory benchmarks, printed as tables: `make bench` (or `python -m benchmarks [name ...]`)."""
