// DistillCore: see DESIGN.md
