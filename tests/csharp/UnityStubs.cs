// Just enough of Unity's API, with Unity's signatures, to type-check the package's Unity-only
// code (the UNITY_2018_1_OR_NEWER overloads and the WebCamTexture sample) with mcs. Unity itself
// cannot run on the CI machines; nothing here is executed.
namespace UnityEngine
{
    public struct Color32 { public byte r, g, b, a; }
    public struct Rect { public Rect(float x, float y, float width, float height) { } }
    public class Object { }
    public class Component : Object { }
    public class Behaviour : Component { public bool enabled { get; set; } }
    public class MonoBehaviour : Behaviour { }
    public class Texture : Object { public virtual int width => 0; public virtual int height => 0; }
    public sealed class WebCamTexture : Texture
    {
        public WebCamTexture(int requestedWidth, int requestedHeight) { }
        public bool didUpdateThisFrame => false;
        public void Play() { }
        public void Stop() { }
        public Color32[] GetPixels32(Color32[] colors) => colors;
    }
    public static class Application { public static string streamingAssetsPath => ""; }
    public static class Time { public static float time => 0; public static float realtimeSinceStartup => 0; }
    public static class Screen { public static int height => 0; }
    public static class GUI { public static void Label(Rect position, string text) { } }
    public sealed class TooltipAttribute : System.Attribute { public TooltipAttribute(string tooltip) { } }
}

namespace Unity.Collections
{
    public struct NativeArray<T> where T : struct { public int Length => 0; }
}

namespace Unity.Collections.LowLevel.Unsafe
{
    public static class NativeArrayUnsafeUtility
    {
        public static unsafe void* GetUnsafeReadOnlyPtr<T>(NativeArray<T> nativeArray) where T : struct => null;
    }
}
