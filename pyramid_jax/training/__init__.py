"""Training, the part every trained model shares: the train state, optimizer and update, checkpoints and exact
resumption, the data pipeline, the loop, the export. The models' own parts: `dit_training`, `vae_training`."""
