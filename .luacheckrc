std = "lua54"
max_line_length = 120
unused_args = false
exclude_files = { "cloudfetch/**", "build/**" }
files["spec/**"] = { std = "+busted" }
