"""Where and how a run executes: devices, seeds, torch.distributed, speed options, atomic files."""
