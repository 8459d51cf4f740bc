"""What a run reads: where the model and data come from (local, hub, bundled), the checkpoint and
its identity, the evaluated rows, their tokens and batches, the calibration samples. Imports only
common.host."""
