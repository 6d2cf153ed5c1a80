"""Alert rules, their per-(rule, device, marker) state, evaluation and history."""
