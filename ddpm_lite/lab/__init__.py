"""The notebooks' interface, apart from the core: sliders and their static twins, the drawing pad, pictures,
previews and progress snapshots of a run, planning a run on your own data, the 2-D toy of notebook 04b, the shapes of
notebook 09, the checker of the build-it-yourself exercises, and the course's smoke switch, figure output and claims.

It imports the core (the modules at the top of ddpm_lite/); the core never imports it. Notebooks import its modules
by name: `from ddpm_lite.lab import course, exercises, viz, widgets`.
"""
