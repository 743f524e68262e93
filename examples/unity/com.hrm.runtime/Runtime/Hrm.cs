// The C# face of libhrm: SafeHandle-owned runtime, detector and bitmap, and managed copies of
// each result. Builds with Unity and, without the UNITY_* parts, with plain mono (mcs).
using System;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
#if UNITY_2018_1_OR_NEWER
using Unity.Collections;
using Unity.Collections.LowLevel.Unsafe;
using UnityEngine;
#endif

namespace Hrm
{
    /// <summary>A failed libhrm call: its status code and libhrm's message.</summary>
    public sealed class HrmException : Exception
    {
        public uint Status { get; }
        public HrmException(uint status, string message) : base(message) { Status = status; }
    }

    /// <summary>The HRM_PIXEL_FORMAT_* values of hrm.h.</summary>
    public enum HrmPixelFormat : uint { Rgb8 = 0, Bgr8 = 1, Rgba8 = 2, Bgra8 = 3, Gray8 = 4 }

    /// <summary>One face: box and keypoints in frame pixels (top-left origin), AUs in the runtime's order.</summary>
    public sealed class HrmFace
    {
        public float Score;
        /// <summary>x, y, width, height.</summary>
        public float[] Box;
        /// <summary>Right eye, left eye, nose tip, right and left mouth corner, as x, y pairs.</summary>
        public float[] Keypoints;
        /// <summary>Per AU; NaN where the model does not estimate it.</summary>
        public float[] Probabilities;
        public bool[] Present;
        /// <summary>Head pose in degrees: pitch, yaw, roll; null when the face mesh gave none.</summary>
        public float[] Pose;
        /// <summary>The face mesh's presence score, 0 to 1; NaN when the mesh did not run.</summary>
        public float MeshScore;
        /// <summary>The face's track in an HrmStream (kept while the same face stays in view); -1 from HrmDetector.</summary>
        public long TrackId;
        /// <summary>HRM's atypicality score (about 1 to 5) of the track's last 15 frames; NaN until then, and
        /// without an [atypicality] model.</summary>
        public float Atypicality;
    }

    internal sealed class RuntimeHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public RuntimeHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.hrm_runtime_free(handle); return true; }
    }

    internal sealed class DetectorHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        // The runtime stays alive (and is freed after this detector) while the detector lives.
        internal RuntimeHandle Runtime;
        public DetectorHandle() : base(true) { }
        protected override bool ReleaseHandle()
        {
            Native.hrm_detector_free(handle);
            Runtime?.DangerousRelease();
            return true;
        }
    }

    internal sealed class StreamHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        // The runtime stays alive (and is freed after this stream) while the stream lives.
        internal RuntimeHandle Runtime;
        public StreamHandle() : base(true) { }
        protected override bool ReleaseHandle()
        {
            Native.hrm_stream_free(handle);
            Runtime?.DangerousRelease();
            return true;
        }
    }

    internal sealed class BitmapHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public BitmapHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.hrm_bitmap_free(handle); return true; }
    }

    internal sealed class ResultHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public ResultHandle() : base(true) { }
        protected override bool ReleaseHandle() { Native.hrm_result_free(handle); return true; }
    }

    /// <summary>A configuration with its models loaded; share one between threads.</summary>
    public sealed class HrmRuntime : IDisposable
    {
        internal readonly RuntimeHandle Handle;

        /// <summary>The AU ids of every face's Probabilities, in order ("AU1", ...).</summary>
        public string[] AuIds { get; }

        HrmRuntime(RuntimeHandle handle)
        {
            Handle = handle;
            IntPtr ids;
            UIntPtr count;
            Native.Check(Native.hrm_runtime_au_ids(Handle, out ids, out count));
            AuIds = new string[(int)count.ToUInt32()];
            for (int i = 0; i < AuIds.Length; i++)
                AuIds[i] = Marshal.PtrToStringAnsi(Marshal.ReadIntPtr(ids, i * IntPtr.Size));
        }

        /// <summary>What runs a stage (0 the AU model, 1 the face detector, 2 the face mesh), as
        /// "BACKEND:DEVICE": "tract:cpu", "onnxruntime:cuda".</summary>
        public string Device(uint stage = 0)
        {
            UIntPtr needed;
            uint status = Native.hrm_runtime_device(Handle, stage, null, UIntPtr.Zero, out needed);
            if (status != Native.BufferTooSmall) Native.Check(status);
            var buffer = new byte[(int)needed.ToUInt32()];
            Native.Check(Native.hrm_runtime_device(Handle, stage, buffer, (UIntPtr)buffer.Length, out needed));
            return System.Text.Encoding.UTF8.GetString(buffer, 0, buffer.Length - 1);
        }

        /// <summary>Checks that the loaded libhrm speaks the ABI these declarations were written for.</summary>
        static void CheckAbi()
        {
            uint abi = Native.hrm_abi_version();
            if (abi != Native.AbiVersion)
                throw new HrmException(1, "libhrm " + Version + " has ABI " + abi + ", this binding expects " + Native.AbiVersion);
        }

        public static string Version => Marshal.PtrToStringAnsi(Native.hrm_version());

        public static HrmRuntime FromFile(string path)
        {
            CheckAbi();
            RuntimeHandle handle;
            Native.Check(Native.hrm_runtime_new_from_file(Native.Utf8(path), out handle));
            return new HrmRuntime(handle);
        }

        /// <summary>TOML text; relative paths are taken from baseDir (null: the current directory).</summary>
        public static HrmRuntime FromString(string toml, string baseDir = null)
        {
            CheckAbi();
            RuntimeHandle handle;
            Native.Check(Native.hrm_runtime_new_from_string(Native.Utf8(toml), Native.Utf8(baseDir), out handle));
            return new HrmRuntime(handle);
        }

        public void Dispose() => Handle.Dispose();
    }

    /// <summary>A photograph decoded by libhrm, copied into managed RGB8 bytes (top row first).</summary>
    public sealed class HrmBitmap
    {
        public readonly byte[] Pixels;
        public readonly int Width;
        public readonly int Height;

        public HrmBitmap(string path)
        {
            BitmapHandle handle;
            Native.Check(Native.hrm_bitmap_load(Native.Utf8(path), out handle));
            using (handle)
            {
                var image = new Native.Image { struct_size = (uint)Marshal.SizeOf(typeof(Native.Image)) };
                Native.Check(Native.hrm_bitmap_image(handle, ref image));
                Width = (int)image.width;
                Height = (int)image.height;
                Pixels = new byte[Width * Height * 3];
                Marshal.Copy(image.data, Pixels, 0, Pixels.Length);
            }
        }
    }

    /// <summary>A detector with its own inference state: one thread at a time. Dispose it when done.</summary>
    public sealed class HrmDetector : IDisposable
    {
        readonly DetectorHandle handle;
        public string[] AuIds { get; }

        public HrmDetector(HrmRuntime runtime)
        {
            AuIds = runtime.AuIds;
            bool added = false;
            runtime.Handle.DangerousAddRef(ref added);
            try
            {
                Native.Check(Native.hrm_detector_new(runtime.Handle, out handle));
                handle.Runtime = runtime.Handle;
                added = false;
            }
            finally
            {
                if (added) runtime.Handle.DangerousRelease();
            }
        }

        /// <summary>Every face in a frame of bytes: rows of width pixels, stride bytes apart (0: packed).</summary>
        public HrmFace[] Detect(byte[] pixels, int width, int height, HrmPixelFormat format,
                                int stride = 0, bool bottomUp = false, long timestamp = 0)
            => RunBytes(pixels, width, height, format, stride, bottomUp, timestamp, Run);

#if UNITY_2018_1_OR_NEWER
        /// <summary>WebCamTexture.GetPixels32 / Texture2D.GetPixels32 pixels: RGBA, bottom row first.</summary>
        public HrmFace[] Detect(Color32[] pixels, int width, int height, long timestamp = 0)
            => RunColors(pixels, width, height, timestamp, Run);

        /// <summary>Texture2D.GetRawTextureData / AsyncGPUReadback bytes, bottom row first.</summary>
        public HrmFace[] Detect(NativeArray<byte> pixels, int width, int height, HrmPixelFormat format,
                                long timestamp = 0)
            => RunNative(pixels, width, height, format, timestamp, Run);
#endif

        uint Run(ref Native.Image image, out ResultHandle result) => Native.hrm_detect_frame(handle, ref image, out result);

        internal static HrmFace[] RunBytes(byte[] pixels, int width, int height, HrmPixelFormat format,
                                           int stride, bool bottomUp, long timestamp, Native.RunFrame run)
        {
            int bytesPerPixel = format == HrmPixelFormat.Gray8 ? 1 : format <= HrmPixelFormat.Bgr8 ? 3 : 4;
            if (stride == 0) stride = width * bytesPerPixel;
            if (pixels == null || (long)stride * (height - 1) + (long)width * bytesPerPixel > pixels.Length)
                throw new ArgumentException("pixels holds fewer bytes than width, height and stride describe");
            var pin = GCHandle.Alloc(pixels, GCHandleType.Pinned);
            try
            {
                return RunPointer(pin.AddrOfPinnedObject(), width, height, format, stride, bottomUp, timestamp, run);
            }
            finally
            {
                pin.Free();
            }
        }

#if UNITY_2018_1_OR_NEWER
        internal static HrmFace[] RunColors(Color32[] pixels, int width, int height, long timestamp, Native.RunFrame run)
        {
            if (pixels == null || pixels.Length < width * height)
                throw new ArgumentException("pixels holds fewer than width * height colours");
            var pin = GCHandle.Alloc(pixels, GCHandleType.Pinned);
            try
            {
                return RunPointer(pin.AddrOfPinnedObject(), width, height, HrmPixelFormat.Rgba8, width * 4, true, timestamp, run);
            }
            finally
            {
                pin.Free();
            }
        }

        internal static unsafe HrmFace[] RunNative(NativeArray<byte> pixels, int width, int height, HrmPixelFormat format,
                                                   long timestamp, Native.RunFrame run)
        {
            int bytesPerPixel = format == HrmPixelFormat.Gray8 ? 1 : format <= HrmPixelFormat.Bgr8 ? 3 : 4;
            if (pixels.Length < width * height * bytesPerPixel)
                throw new ArgumentException("pixels holds fewer bytes than width and height describe");
            var data = (IntPtr)NativeArrayUnsafeUtility.GetUnsafeReadOnlyPtr(pixels);
            return RunPointer(data, width, height, format, width * bytesPerPixel, true, timestamp, run);
        }
#endif

        /// <summary>AUs of faces already aligned (RGB8 crops of any size), one HrmFace per crop.</summary>
        public HrmFace[] DetectAligned(byte[][] rgbCrops, int[] widths, int[] heights)
        {
            int n = rgbCrops.Length;
            var pins = new GCHandle[n];
            var images = new IntPtr[n];
            int size = Marshal.SizeOf(typeof(Native.Image));
            try
            {
                for (int i = 0; i < n; i++)
                {
                    pins[i] = GCHandle.Alloc(rgbCrops[i], GCHandleType.Pinned);
                    var image = Describe(pins[i].AddrOfPinnedObject(), widths[i], heights[i], HrmPixelFormat.Rgb8, widths[i] * 3, false, 0);
                    images[i] = Marshal.AllocHGlobal(size);
                    Marshal.StructureToPtr(image, images[i], false);
                }
                ResultHandle result;
                Native.Check(Native.hrm_detect_aligned(handle, images, (UIntPtr)n, out result));
                return Read(result);
            }
            finally
            {
                for (int i = 0; i < n; i++)
                {
                    if (images[i] != IntPtr.Zero) Marshal.FreeHGlobal(images[i]);
                    if (pins[i].IsAllocated) pins[i].Free();
                }
            }
        }

        static HrmFace[] RunPointer(IntPtr data, int width, int height, HrmPixelFormat format, int stride, bool bottomUp,
                                    long timestamp, Native.RunFrame run)
        {
            var image = Describe(data, width, height, format, stride, bottomUp, timestamp);
            ResultHandle result;
            Native.Check(run(ref image, out result));
            return Read(result);
        }

        static Native.Image Describe(IntPtr data, int width, int height, HrmPixelFormat format, int stride, bool bottomUp, long timestamp)
        {
            return new Native.Image
            {
                struct_size = (uint)Marshal.SizeOf(typeof(Native.Image)),
                pixel_format = (uint)format,
                width = (uint)width,
                height = (uint)height,
                stride = (UIntPtr)stride,
                data = data,
                timestamp = timestamp,
                flags = bottomUp ? Native.ImageBottomUp : 0,
            };
        }

        /// <summary>Copies every face out of a native result and frees it.</summary>
        internal static HrmFace[] Read(ResultHandle result)
        {
            using (result)
            {
                UIntPtr count;
                Native.Check(Native.hrm_result_face_count(result, out count));
                var faces = new HrmFace[(int)count.ToUInt32()];
                for (int i = 0; i < faces.Length; i++)
                {
                    var raw = new Native.Face { struct_size = (uint)Marshal.SizeOf(typeof(Native.Face)), track_id = -1, atypicality = float.NaN };
                    Native.Check(Native.hrm_result_face(result, (UIntPtr)i, ref raw));
                    int n = (int)raw.au_count.ToUInt32();
                    var face = new HrmFace
                    {
                        Score = raw.score,
                        Box = raw.bbox,
                        Keypoints = raw.keypoints,
                        Probabilities = new float[n],
                        Present = new bool[n],
                        Pose = raw.has_pose != 0 ? raw.pose : null,
                        MeshScore = raw.mesh_score,
                        TrackId = raw.track_id,
                        Atypicality = raw.atypicality,
                    };
                    Marshal.Copy(raw.probabilities, face.Probabilities, 0, n);
                    var present = new byte[n];
                    Marshal.Copy(raw.present, present, 0, n);
                    for (int a = 0; a < n; a++) face.Present[a] = present[a] != 0;
                    faces[i] = face;
                }
                return faces;
            }
        }

        public void Dispose() => handle.Dispose();
    }

    /// <summary>The frames of one camera or video, in order: faces keep a TrackId while in view, and each
    /// track gets HRM's atypicality score once it has 15 frames (with an [atypicality] model in the
    /// configuration). One thread at a time; one stream per camera. Dispose it when done.</summary>
    public sealed class HrmStream : IDisposable
    {
        readonly StreamHandle handle;
        public string[] AuIds { get; }

        public HrmStream(HrmRuntime runtime)
        {
            AuIds = runtime.AuIds;
            bool added = false;
            runtime.Handle.DangerousAddRef(ref added);
            try
            {
                Native.Check(Native.hrm_stream_new(runtime.Handle, out handle));
                handle.Runtime = runtime.Handle;
                added = false;
            }
            finally
            {
                if (added) runtime.Handle.DangerousRelease();
            }
        }

        /// <summary>The next frame, timestampMicros after any origin (never earlier than the last frame's).</summary>
        public HrmFace[] Push(byte[] pixels, int width, int height, HrmPixelFormat format, long timestampMicros,
                              int stride = 0, bool bottomUp = false)
            => HrmDetector.RunBytes(pixels, width, height, format, stride, bottomUp, timestampMicros, Run);

#if UNITY_2018_1_OR_NEWER
        /// <summary>WebCamTexture.GetPixels32 pixels: RGBA, bottom row first.</summary>
        public HrmFace[] Push(Color32[] pixels, int width, int height, long timestampMicros)
            => HrmDetector.RunColors(pixels, width, height, timestampMicros, Run);

        /// <summary>Texture2D.GetRawTextureData / AsyncGPUReadback bytes, bottom row first.</summary>
        public HrmFace[] Push(NativeArray<byte> pixels, int width, int height, HrmPixelFormat format, long timestampMicros)
            => HrmDetector.RunNative(pixels, width, height, format, timestampMicros, Run);
#endif

        /// <summary>Forgets every track (a cut, another camera); new tracks get new ids.</summary>
        public void Reset() => Native.Check(Native.hrm_stream_reset(handle));

        uint Run(ref Native.Image image, out ResultHandle result) => Native.hrm_stream_push(handle, ref image, out result);

        public void Dispose() => handle.Dispose();
    }
}
