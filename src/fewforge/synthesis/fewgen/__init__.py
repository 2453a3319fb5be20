"""FewGen (weighted label-conditional generator tuning) and DawGen (+ its distribution-aligned hinge)."""
