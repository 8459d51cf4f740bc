"""This machine and this process: the CPU and GPU, library versions, the repository's paths, files
written whole, Ctrl-C, progress bars, quiet libraries, the errors a run can end in. Imports
nothing else of common/."""
