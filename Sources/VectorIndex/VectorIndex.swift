// VectorIndex: see DESIGN.md
