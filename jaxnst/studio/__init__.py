"""The studio: a local web page that runs :func:`jaxnst.stylize.stylize` and shows the descent live.

``jaxnst serve`` (:mod:`jaxnst.studio.cli`) starts it. The package is one more front end over the
pipeline: :mod:`~jaxnst.studio.forms` turns form fields into ``stylize`` options (defaults and
validation come from :class:`jaxnst.stylize.Options`), :mod:`~jaxnst.studio.store` keeps the results
folder, :mod:`~jaxnst.studio.jobs` runs one descent at a time off the event loop, and
:mod:`~jaxnst.studio.app` is the Starlette application (it alone imports the web libraries, which
are the optional extra ``jaxnst[studio]``).

A front end: it may import the API, the pipeline and everything below it, and the command line's
flags and warm-up (:mod:`jaxnst.cli`); nothing imports it but ``jaxnst serve``'s entry.
"""
