"""The filter factory named by `[filter:stamp]` in app.ini: adds one header."""


def make_stamp_filter(global_conf, header="X-Paste-Filter", value="stamp"):
    def filter_(app):
        def stamped(environ, start_response):
            def start(status, headers, exc_info=None):
                return start_response(status, list(headers) + [(header, value)], exc_info)

            return app(environ, start)

        return stamped

    return filter_
