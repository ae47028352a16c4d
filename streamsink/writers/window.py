"""An on-screen preview window for `watch`."""

from __future__ import annotations

import os
import sys

import numpy as np

from streamsink.errors import WriterError
from streamsink.writers.output import _reason


class Window:
    """An on-screen preview through OpenCV's highgui, for `watch`.

    Only usable where OpenCV was built with a GUI backend and a display
    exists; check `Window.available()` first (headless OpenCV has none).
    """

    def __init__(self, title: str = "streamsink") -> None:
        self.title = title
        self._open = False

    @staticmethod
    def available() -> bool:
        """True when a window can be shown: a display and an OpenCV with a GUI; never raises."""
        return Window.has_display() and Window.has_gui()

    @staticmethod
    def has_display() -> bool:
        """Whether there is a screen to show a window on (X11 or Wayland on Linux and the BSDs; always elsewhere)."""
        if sys.platform.startswith("linux") or "bsd" in sys.platform:
            return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        return True

    @staticmethod
    def has_gui() -> bool:
        """Whether this OpenCV was built with a GUI backend (opencv-python-headless is not); never raises."""
        try:
            import cv2

            framework = getattr(cv2, "currentUIFramework", None)
            if framework is not None:
                return bool(framework())
            info = cv2.getBuildInformation()
            gui = info.split("GUI:", 1)[1].splitlines()[0].strip() if "GUI:" in info else ""
            return bool(gui) and gui.upper() != "NONE"
        except Exception:
            return False

    def show(self, image_rgb: np.ndarray) -> bool:
        """Draw one frame; False once the user pressed q or Esc or closed the window."""
        import cv2

        try:
            if not self._open:
                cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
                self._open = True
            cv2.imshow(self.title, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
            key = cv2.waitKey(1) & 0xFF
            if key in (ord("q"), ord("Q"), 27):
                return False
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error as error:
            raise WriterError(f"cannot show window {self.title!r}: {_reason(error)}") from None

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            import cv2

            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except Exception:
            pass

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
