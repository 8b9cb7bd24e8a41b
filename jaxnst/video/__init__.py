"""Video: temporally consistent stylization of clips (Ruder, Dosovitskiy & Brox 2016/2018).

``io`` (PyAV) and ``flow`` (OpenCV) need the ``video`` extra: ``pip install 'jaxnst[video]'``;
they import av/cv2 on first use, so importing this package never needs them.

A front end: it may import the API, the pipeline and everything below it, and the command line
(:mod:`jaxnst.cli`, whose flags ``jaxnst video`` reuses); ``jaxnst/__init__`` re-exports
:func:`jaxnst.stylize_video` from :mod:`jaxnst.video.api`.
"""
