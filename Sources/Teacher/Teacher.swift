// Teacher: see DESIGN.md
