// DistillServer: see DESIGN.md
