MARKER = "mod_wsgi.server from the installed package"
