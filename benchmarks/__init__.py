"""`make bench`: each module here with a `run()` function is one benchmark; it prints its numbers.

Benchmarks run on PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/bench) in
databases of their own, which they create and drop."""
