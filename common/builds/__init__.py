"""What every build shares, whichever backend makes it: the cache of build folders, the precision
type, how two builds' answers compare (metrics), when a slow pass stops (pace), and
--min-agreement's rule and search (fidelity). Imports only common.host and common.inputs."""
