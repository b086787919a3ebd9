"""Datasets, loaders and rendering for voxel grids."""
