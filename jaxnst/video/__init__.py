"""Video: temporally consistent stylization of clips (Ruder, Dosovitskiy & Brox 2016/2018).

``io`` (PyAV) and ``flow`` (OpenCV) need the ``video`` extra: ``pip install 'jaxnst[video]'``;
they import av/cv2 on first use, so importing this package never needs them.
"""
