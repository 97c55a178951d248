"""Developer tools over a compiled model, used by the CLI and importable on their own:
stepping through a pipeline (`stepping`), finding the pass that broke the numbers
(`bisection`), reproducers (`repro`), per-node profiles (`profiler`), latency (`bench`),
ahead-of-time artifacts (`aot`), pictures (`graphviz`) and the numeric comparisons they share
(`numerics`)."""
