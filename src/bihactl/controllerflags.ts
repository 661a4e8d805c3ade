// Node settings of the controller process, put on its command line by `bihactl start` and by the
// unit `bihactl systemd-unit` writes. A semi-space of 1 MB instead of V8's default of up to 16 MB:
// the controller allocates a little all the time (status, polls, control channel), and a large
// young generation then stays in its memory, about 12 MB of RSS for nothing (docs/performance.md,
// "Footprint"). Garbage collection runs more often but each run is small.
export const CONTROLLER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
