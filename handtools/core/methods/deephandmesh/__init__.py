"""DeepHandMesh (Moon, Shiratori, Lee, ECCV 2020): a personal hand model learnt from 3D joints
and multi-view depth maps, on the 778-vertex MANO topology. ``handtools personalize``."""
