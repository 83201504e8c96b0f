"""Allocation: feasibility, baselines, grid oracles and the IDLA allocator (numpy + torch; imports no Ray)."""
