// TeacherSimulator: see DESIGN.md
