"""Allocation: feasibility, the utility function, baselines, grid oracles, the IDLA allocator, the scheme registry,
the H0 behaviour policy and the period loop (numpy + torch; imports no Ray and nothing from the RL layer)."""
