"""One run of a proof point, top to bottom: the command line and its checks, which builds the
flags leave (offers) and which one runs (trial), the two-machine hand-off, evaluation, the table
and the results files. Imports every other room; none imports it."""
