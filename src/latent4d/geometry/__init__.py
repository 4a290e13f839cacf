"""Shared 3D maths: rotations, chamfer / knn, FPS and surface sampling, mesh SDF, octree, meshing, RGB-D."""

from latent4d.geometry.distances import chamfer_distance, gather_points, knn, nearest_distance
from latent4d.geometry.meshing import dense_mesh, evaluate_grid, grid_centers, marching_cubes
from latent4d.geometry.mise import mise_mesh, mise_volume
from latent4d.geometry.octree import (
    octree_band,
    octree_mesh,
    octree_surface_points,
    project_to_surface,
    sdf_keep,
)
from latent4d.geometry.rgbd import (
    RGBDFrame,
    backproject_depth,
    check_intrinsics,
    look_at,
    orbit_eye,
    render_rgbd,
)
from latent4d.geometry.rotations import (
    axis_angle_to_matrix,
    geodesic_angle,
    matrix_to_6d,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    project_to_rotation,
    quaternion_to_matrix,
    random_rotation,
    rotation_about_axis,
    sixd_to_matrix,
    symmetric_rotation_error,
)
from latent4d.geometry.sampling import farthest_point_sampling, interpolate_barycentric, sample_surface
from latent4d.geometry.sdf import MeshSDF, sdf_samples

__all__ = [
    "MeshSDF",
    "RGBDFrame",
    "axis_angle_to_matrix",
    "backproject_depth",
    "chamfer_distance",
    "check_intrinsics",
    "dense_mesh",
    "evaluate_grid",
    "farthest_point_sampling",
    "gather_points",
    "geodesic_angle",
    "grid_centers",
    "interpolate_barycentric",
    "knn",
    "look_at",
    "marching_cubes",
    "mise_mesh",
    "mise_volume",
    "matrix_to_6d",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "nearest_distance",
    "octree_band",
    "octree_mesh",
    "octree_surface_points",
    "orbit_eye",
    "project_to_rotation",
    "project_to_surface",
    "quaternion_to_matrix",
    "random_rotation",
    "render_rgbd",
    "rotation_about_axis",
    "sample_surface",
    "sdf_keep",
    "sdf_samples",
    "sixd_to_matrix",
    "symmetric_rotation_error",
]
