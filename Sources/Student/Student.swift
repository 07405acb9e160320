// Student: see DESIGN.md
