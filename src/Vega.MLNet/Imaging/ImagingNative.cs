using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Vega.MLNet.Imaging;

/// <summary>
/// Loads a system library by its exact SONAME (never the unversioned -dev symlink) and resolves exports; a missing
/// library is a <see cref="DllNotFoundException"/> that says how to install it.
/// </summary>
internal static class NativeLoader
{
    public const string Fix = "Install it with `bash scripts/setup.sh` (it installs the Debian packages libturbojpeg0 and libpng16-16).";

    public static IntPtr Load(string soname, string package)
    {
        if (NativeLibrary.TryLoad(soname, out IntPtr handle)) return handle;
        throw new DllNotFoundException(
            $"The native library '{soname}' (Debian package {package}) was not found; Vega.MLNet decodes images with it. {Fix}");
    }

    public static IntPtr Export(IntPtr library, string soname, string name)
    {
        if (NativeLibrary.TryGetExport(library, name, out IntPtr fn)) return fn;
        throw new DllNotFoundException($"'{soname}' has no export '{name}': it is not the expected library version. {Fix}");
    }
}

/// <summary>
/// TurboJPEG 2.x (<c>libturbojpeg.so.0</c>) decompression functions, bound once. A <c>tjhandle</c> is not thread-safe:
/// handles are pooled and each decode rents one.
/// </summary>
internal static unsafe class TurboJpeg
{
    public const string SoName = "libturbojpeg.so.0";
    public const int PF_RGB = 0, PF_CMYK = 11;
    public const int CS_RGB = 0, CS_YCbCr = 1, CS_GRAY = 2, CS_CMYK = 3, CS_YCCK = 4;
    public const int ERR_WARNING = 0, ERR_FATAL = 1;
    // 0 = ISLOW integer IDCT and fancy upsampling, libjpeg-turbo's (and Pillow's) defaults; named for clarity.
    public const int FLAG_ACCURATEDCT = 4096;

    private static readonly Lazy<Api> Functions = new(Bind, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly ConcurrentBag<IntPtr> Handles = new();

    internal readonly struct Api
    {
        public readonly delegate* unmanaged<IntPtr> InitDecompress;
        public readonly delegate* unmanaged<IntPtr, byte*, CULong, int*, int*, int*, int*, int> DecompressHeader3;
        public readonly delegate* unmanaged<IntPtr, byte*, CULong, byte*, int, int, int, int, int, int> Decompress2;
        public readonly delegate* unmanaged<IntPtr, IntPtr> GetErrorStr2;
        public readonly delegate* unmanaged<IntPtr, int> GetErrorCode;
        public readonly delegate* unmanaged<IntPtr, int> Destroy;

        public Api(IntPtr lib)
        {
            InitDecompress = (delegate* unmanaged<IntPtr>)NativeLoader.Export(lib, SoName, "tjInitDecompress");
            DecompressHeader3 = (delegate* unmanaged<IntPtr, byte*, CULong, int*, int*, int*, int*, int>)NativeLoader.Export(lib, SoName, "tjDecompressHeader3");
            Decompress2 = (delegate* unmanaged<IntPtr, byte*, CULong, byte*, int, int, int, int, int, int>)NativeLoader.Export(lib, SoName, "tjDecompress2");
            GetErrorStr2 = (delegate* unmanaged<IntPtr, IntPtr>)NativeLoader.Export(lib, SoName, "tjGetErrorStr2");
            GetErrorCode = (delegate* unmanaged<IntPtr, int>)NativeLoader.Export(lib, SoName, "tjGetErrorCode");
            Destroy = (delegate* unmanaged<IntPtr, int>)NativeLoader.Export(lib, SoName, "tjDestroy");
        }
    }

    private static Api Bind() => new(NativeLoader.Load(SoName, "libturbojpeg0"));

    public static Api F => Functions.Value;

    public static IntPtr RentHandle()
    {
        if (Handles.TryTake(out IntPtr h)) return h;
        h = Functions.Value.InitDecompress();
        if (h == IntPtr.Zero)
            throw new InvalidOperationException("tjInitDecompress failed: " + Marshal.PtrToStringUTF8(Functions.Value.GetErrorStr2(IntPtr.Zero)));
        return h;
    }

    /// <summary>Returns a handle to the pool (at most 64 are kept; others are destroyed).</summary>
    public static void ReturnHandle(IntPtr h)
    {
        if (Handles.Count < 64) Handles.Add(h);
        else Functions.Value.Destroy(h);
    }

    public static string ErrorString(IntPtr h) => Marshal.PtrToStringUTF8(Functions.Value.GetErrorStr2(h)) ?? "unknown TurboJPEG error";
}

/// <summary>libpng 1.6 simplified read API (<c>libpng16.so.16</c>), which is safe to P/Invoke (no longjmp crosses managed frames).</summary>
internal static unsafe class LibPng
{
    public const string SoName = "libpng16.so.16";
    public const uint IMAGE_VERSION = 1;
    public const uint FORMAT_FLAG_ALPHA = 0x01, FORMAT_FLAG_COLOR = 0x02, FORMAT_FLAG_LINEAR = 0x04, FORMAT_FLAG_COLORMAP = 0x08;
    public const uint FORMAT_RGB = 0x02, FORMAT_RGBA = 0x03, FORMAT_LINEAR_Y = 0x04, FORMAT_LINEAR_RGB = 0x06;
    public const uint IMAGE_FLAG_16BIT_sRGB = 0x04;

    /// <summary>png_image (png.h, PNG_IMAGE_VERSION 1): 104 bytes on x86-64.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PngImage
    {
        public IntPtr Opaque;
        public uint Version, Width, Height, Format, Flags, ColormapEntries, WarningOrError;
        public fixed byte Message[64];

        public readonly string MessageText()
        {
            fixed (byte* m = Message) return Marshal.PtrToStringUTF8((IntPtr)m) ?? "";
        }
    }

    internal readonly struct Api
    {
        public readonly delegate* unmanaged<PngImage*, void*, nuint, int> BeginReadFromMemory;
        public readonly delegate* unmanaged<PngImage*, void*, void*, int, void*, int> FinishRead;
        public readonly delegate* unmanaged<PngImage*, void> Free;

        public Api(IntPtr lib)
        {
            BeginReadFromMemory = (delegate* unmanaged<PngImage*, void*, nuint, int>)NativeLoader.Export(lib, SoName, "png_image_begin_read_from_memory");
            FinishRead = (delegate* unmanaged<PngImage*, void*, void*, int, void*, int>)NativeLoader.Export(lib, SoName, "png_image_finish_read");
            Free = (delegate* unmanaged<PngImage*, void>)NativeLoader.Export(lib, SoName, "png_image_free");
        }
    }

    private static readonly Lazy<Api> Functions = new(() => new Api(NativeLoader.Load(SoName, "libpng16-16")), LazyThreadSafetyMode.ExecutionAndPublication);

    public static Api F => Functions.Value;
}
