"""Package data of costmodel: synthesis, memory-compiler and CACTI tables, and the paper's
published results (see README.md)."""
