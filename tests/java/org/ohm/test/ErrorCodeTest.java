package org.ohm.test;

import static org.junit.jupiter.api.Assertions.*;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * Native's OHM_E* constants are a copy of ohm.h's OHM_ERRORS list: each must carry the value the C side gives
 * that name (ohm_strerror says "OHM_&lt;name&gt;: ..."), and every code the C list has must be in Java.
 */
class ErrorCodeTest {
    private static final Class<?> NATIVE;
    private static final Method STRERROR;

    static {
        try {
            NATIVE = Class.forName("org.ohm.Native");
            STRERROR = NATIVE.getDeclaredMethod("strerror", int.class);
            STRERROR.setAccessible(true);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private static String strerror(int code) throws ReflectiveOperationException {
        return (String) STRERROR.invoke(null, code);
    }

    /** Native's code constants by value: OK and the E* names. */
    private static Map<Integer, String> javaCodes() throws ReflectiveOperationException {
        Map<Integer, String> codes = new TreeMap<>();
        for (Field f : NATIVE.getDeclaredFields()) {
            String name = f.getName();
            if (!Modifier.isStatic(f.getModifiers()) || f.getType() != int.class) continue;
            if (!name.equals("OK") && !name.matches("E[A-Z]+")) continue;
            f.setAccessible(true);
            String old = codes.put(f.getInt(null), name);
            assertNull(old, name + " and " + old + " share a value");
        }
        return codes;
    }

    @Test
    void eachJavaConstantHasTheValueCGivesItsName() throws ReflectiveOperationException {
        Map<Integer, String> java = javaCodes();
        assertFalse(java.isEmpty());
        for (Map.Entry<Integer, String> e : java.entrySet())
            assertTrue(strerror(e.getKey()).startsWith("OHM_" + e.getValue() + ": "),
                    "Native." + e.getValue() + " = " + e.getKey() + " but ohm_strerror says: " + strerror(e.getKey()));
    }

    @Test
    void everyCodeOfTheCListIsInJava() throws ReflectiveOperationException {
        Map<Integer, String> java = javaCodes();
        int code = 0;
        for (String s; !(s = strerror(code)).startsWith("OHM_E?"); code--) {
            String name = s.substring("OHM_".length(), s.indexOf(':'));
            assertEquals(name, java.get(code), "Native has no constant for C's OHM_" + name + " = " + code);
        }
        assertEquals(-code, java.size(), "Native has codes C does not: " + java);
    }
}
