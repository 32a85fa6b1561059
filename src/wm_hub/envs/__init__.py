"""Gymnasium environments shipped with wm_hub, registered under the `wm_hub/` namespace on import."""

from gymnasium.envs.registration import register, registry

if "wm_hub/Platformer-v0" not in registry:
    register(id="wm_hub/Platformer-v0", entry_point="wm_hub.envs.platformer:PlatformerEnv")
if "wm_hub/Physics-v0" not in registry:
    register(id="wm_hub/Physics-v0", entry_point="wm_hub.envs.physics:PhysicsEnv")
if "wm_hub/CameraScene-v0" not in registry:
    register(id="wm_hub/CameraScene-v0", entry_point="wm_hub.envs.camera_scene:CameraSceneEnv")
if "wm_hub/Wall-v0" not in registry:
    register(id="wm_hub/Wall-v0", entry_point="wm_hub.envs.wall:WallEnv")
if "wm_hub/PointMaze-v0" not in registry:
    register(id="wm_hub/PointMaze-v0", entry_point="wm_hub.envs.point_maze:PointMazeEnv")
if "wm_hub/PushT-v0" not in registry:
    register(id="wm_hub/PushT-v0", entry_point="wm_hub.envs.pusht:PushTTasks")
