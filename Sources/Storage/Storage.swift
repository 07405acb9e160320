// Storage: see DESIGN.md
